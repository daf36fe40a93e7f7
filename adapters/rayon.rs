//! Rayon with context: see issue 4 (in progress).
