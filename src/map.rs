//! A persistent (immutable, structurally shared) map from variable ids to values.
//!
//! A map of up to [`FLAT`] entries is a sorted array inside its root's own allocation, so that
//! `with_value` or `set` on a small context allocates twice (the root and the value). A larger
//! map is a hash array mapped trie keyed directly by the variable's id: ids are unique, so the
//! id is its own perfect hash. Every node holds up to 32 slots addressed by five bits of the id
//! and compressed by a bitmap. Lookups walk `log32(n)` nodes; an insert or a removal copies one
//! path of nodes and shares everything else. Either way a snapshot is a single `Arc` clone, and
//! which form a map takes depends on its set of ids only: flat when there are at most [`FLAT`]
//! and each fits in a `u32` (ids count the variables made, from 1: past four billion
//! variables, a map holding one of the later ones is a trie whatever its length).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::raw::count::Counted;

const BITS: u32 = 5;
const MASK: u64 = (1 << BITS) - 1;
/// Enough levels for every 64-bit id (13 × 5 bits ≥ 64).
const MAX_DEPTH: usize = 13;

/// A stored value together with what is needed to name and print it.
pub(crate) trait Erased: Any + Send + Sync {
    fn name(&self) -> &'static str;
    fn value(&self) -> &(dyn Any + Send + Sync);
    /// `None` when the variable offers no `Debug` formatting.
    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>) -> Option<fmt::Result>;
    /// `None` when the variable offers no `Display` formatting.
    fn fmt_display(&self, f: &mut fmt::Formatter<'_>) -> Option<fmt::Result>;
    fn has_debug(&self) -> bool;
    fn has_display(&self) -> bool;
    /// Whether dropping this value may run code of the user's (see [`drop_runs_user_code`]).
    fn drop_runs_user_code(&self) -> bool;
}

pub(crate) type FmtFn<T> = fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result;

pub(crate) struct Stored<T> {
    pub(crate) name: &'static str,
    pub(crate) debug: Option<FmtFn<T>>,
    pub(crate) display: Option<FmtFn<T>>,
    pub(crate) value: T,
}

impl<T: Send + Sync + 'static> Erased for Stored<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn value(&self) -> &(dyn Any + Send + Sync) {
        &self.value
    }

    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>) -> Option<fmt::Result> {
        self.debug.map(|fmt| fmt(&self.value, f))
    }

    fn fmt_display(&self, f: &mut fmt::Formatter<'_>) -> Option<fmt::Result> {
        self.display.map(|fmt| fmt(&self.value, f))
    }

    fn has_debug(&self) -> bool {
        self.debug.is_some()
    }

    fn has_display(&self) -> bool {
        self.display.is_some()
    }

    fn drop_runs_user_code(&self) -> bool {
        drop_runs_user_code::<T>()
    }
}

pub(crate) type Value = Arc<dyn Erased>;

#[derive(Clone)]
enum Slot {
    Leaf(u64, Value),
    Branch(Node),
}

#[derive(Clone)]
struct Node {
    bitmap: u32,
    slots: Arc<[Slot]>,
}

/// One thin pointer, so that installing a context swaps a single word. The root is counted
/// with `crate::raw::count::Counted` (an `Arc` whose references a thread can also hold as credits), so
/// that capturing the current context on its own thread costs no shared atomic operation.
#[derive(Clone, Default)]
pub(crate) struct Map {
    /// Dropped as any handle is, unless the owner takes it first (a `Context` does: see
    /// [`Map::take_root`]).
    root: Option<Counted<Root>>,
}

/// Up to this many variables live in the root's own allocation, in a flat array: a
/// `with_value` or a `set` on such a map allocates the root and the value, nothing else (the
/// trie took a root, a node, and a node per pair of ids colliding on their low bits).
///
/// 10 covers the contexts most programs carry (a request id, a user, a tenant, a span, ...)
/// in a root of [`ROOT_BYTES`].
const FLAT: usize = 10;

/// The most a root may take. A root is written on the stack, copied into its allocation
/// (`Counted::new`), and copied out of it again when its last handle goes
/// (`Counted::into_inner`): two calls to `memcpy`, which copies up to 256 bytes in one step
/// and more in two, and whose wide reads of a root just written wait until the writes have
/// landed. With `u64` ids and a `usize` length the root took 272 bytes (280 allocated), and
/// `with_value` + drop on a one- and an eight-variable context took 15% and 30% longer than
/// at 224 (232 allocated). The assertion below keeps the root from growing unnoticed.
const ROOT_BYTES: usize = 224;

const _: () = assert!(std::mem::size_of::<Root>() <= ROOT_BYTES);

/// A map's root: its length, its entries, and a stamp no other root ever gets.
pub(crate) struct Root {
    /// A `u32` to keep the root small (see [`ROOT_BYTES`]); a map cannot get near 2^32 entries
    /// (each is a variable and a value, with an allocation each).
    len: u32,
    /// Unique among every root made by the process (see [`next_stamp`]): the identity
    /// `crate::raw`'s read cache validates its entries by, which an address cannot be, since a
    /// freed root's address is reused.
    stamp: u64,
    /// Whether dropping a value reachable from this root may run code of the user's (see
    /// [`drop_runs_user_code`]); conservative: set once any such value was inserted into this
    /// root or an ancestor it was made from, never cleared. Only then does the last snapshot
    /// drop the root in a frame of its own.
    drop_runs_user_code: bool,
    body: Body,
}

#[allow(
    clippy::large_enum_variant,
    reason = "the flat array is inline on purpose: it saves the allocation a box would add"
)]
enum Body {
    /// At most [`FLAT`] entries, each id a `u32`.
    Flat(Flat),
    /// More than [`FLAT`] entries, or an id past `u32::MAX`: a trie.
    Trie(Node),
}

/// The entries of a flat root, sorted by id: the first `len` (every value `Some`); the rest are
/// `0` and `None`. Ids and values in arrays of their own, the ids as `u32`: ten pairs of a
/// `u64` and a value would take 240 bytes (see [`ROOT_BYTES`]).
struct Flat {
    ids: [u32; FLAT],
    values: [Option<Value>; FLAT],
}

impl Root {
    #[inline]
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp
    }

    #[inline]
    fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&Value> {
        match &self.body {
            Body::Flat(flat) => {
                let id = u32::try_from(id).ok()?;
                let index = flat.ids[..self.len()]
                    .iter()
                    .position(|&known| known == id)?;
                flat.values[index].as_ref()
            }
            Body::Trie(node) => node.get(id),
        }
    }

    /// A flat root holding `entries` (sorted by id, at most [`FLAT`]), or `None` when there
    /// are none.
    fn flat(
        entries: impl Iterator<Item = (u32, Value)>,
        drop_runs_user_code: bool,
    ) -> Option<Counted<Root>> {
        let mut flat = Flat {
            ids: [0; FLAT],
            values: [const { None }; FLAT],
        };
        let mut len = 0;
        let slots = flat.ids.iter_mut().zip(&mut flat.values);
        for ((id, value), (known, slot)) in entries.zip(slots) {
            (*known, *slot) = (id, Some(value));
            len += 1;
        }
        (len > 0).then(|| Root::with_body(len, drop_runs_user_code, Body::Flat(flat)))
    }

    #[inline]
    fn with_body(len: u32, drop_runs_user_code: bool, body: Body) -> Counted<Root> {
        Counted::new(Root {
            len,
            stamp: next_stamp(),
            drop_runs_user_code,
            body,
        })
    }

    /// This root's entries with `id` set to `value`.
    fn inserted(&self, id: u64, value: Value, drop_runs_user_code: bool) -> Counted<Root> {
        let drop_runs_user_code = self.drop_runs_user_code || drop_runs_user_code;
        let len = self.len();
        match &self.body {
            Body::Flat(flat) => {
                // Where `id` goes, keeping the ids sorted.
                let small = u32::try_from(id).ok();
                let at = small.map_or(len, |id| {
                    flat.ids[..len]
                        .iter()
                        .position(|&known| known >= id)
                        .unwrap_or(len)
                });
                let replaces = at < len && small == Some(flat.ids[at]);
                let new_len = len + usize::from(!replaces);
                let small = match small {
                    Some(small) if new_len <= FLAT => small,
                    _ => {
                        let mut all: Vec<(u64, Value)> = flat.ids[..len]
                            .iter()
                            .zip(&flat.values[..len])
                            .filter_map(|(&id, value)| Some((id.into(), value.clone()?)))
                            .collect();
                        all.push((id, value));
                        let node = Node::build(&mut all, 0);
                        return Root::trie(new_len, drop_runs_user_code, node);
                    }
                };
                // This root's ids, moved one place up from `at` when `id` is new: copied whole,
                // since the root's copy into its allocation reads 64 bytes at a time, sooner
                // from one 40-byte copy than from ten writes of 4.
                let mut ids = flat.ids;
                if !replaces {
                    for i in (at..len).rev() {
                        ids[i + 1] = ids[i];
                    }
                }
                ids[at] = small;
                // Value `i` of the new root comes from value `source(i)` of this one, except
                // the new one at `at`. Built in place, in the root's literal, so that the array
                // is not moved around.
                let skip = usize::from(replaces);
                let source = |i: usize| match i {
                    i if i < at => Some(i),
                    i if i > at && i < new_len => Some(i - 1 + skip),
                    _ => None,
                };
                let mut value = Some(value);
                Counted::new(Root {
                    // At most `FLAT`.
                    len: new_len as u32,
                    stamp: next_stamp(),
                    drop_runs_user_code,
                    body: Body::Flat(Flat {
                        ids,
                        values: std::array::from_fn(|i| match source(i) {
                            Some(from) => flat.values[from].clone(),
                            None if i == at => value.take(),
                            None => None,
                        }),
                    }),
                })
            }
            Body::Trie(node) => {
                let (node, added) = node.insert(id, value, 0);
                Root::trie(len + usize::from(added), drop_runs_user_code, node)
            }
        }
    }

    /// A trie root.
    #[inline(always)]
    fn trie(len: usize, drop_runs_user_code: bool, node: Node) -> Counted<Root> {
        Counted::new(Root {
            len: u32::try_from(len).expect("contextvars: 2^32 variables in a context"),
            stamp: next_stamp(),
            drop_runs_user_code,
            body: Body::Trie(node),
        })
    }

    /// This root's entries without `id`: `None` when `id` is absent, `Some(None)` when nothing
    /// is left.
    fn removed(&self, id: u64) -> Option<Option<Counted<Root>>> {
        let len = self.len();
        match &self.body {
            Body::Flat(flat) => {
                let id = u32::try_from(id).ok()?;
                let at = flat.ids[..len].iter().position(|&known| known == id)?;
                let rest = flat.ids[..len]
                    .iter()
                    .zip(&flat.values[..len])
                    .enumerate()
                    .filter(|&(i, _)| i != at)
                    .filter_map(|(_, (&id, value))| Some((id, value.clone()?)));
                Some(Root::flat(rest, self.drop_runs_user_code))
            }
            Body::Trie(node) => {
                let node = node.remove(id, 0)?;
                let Some(node) = node else {
                    return Some(None);
                };
                let len = len - 1;
                if len > FLAT || node.iter().any(|(id, _)| u32::try_from(id).is_err()) {
                    return Some(Some(Root::trie(len, self.drop_runs_user_code, node)));
                }
                let mut entries = [const { None }; FLAT];
                for (entry, (id, value)) in entries.iter_mut().zip(node.iter()) {
                    *entry = u32::try_from(id).ok().map(|id| (id, value.clone()));
                }
                entries
                    .sort_unstable_by_key(|entry| entry.as_ref().map_or(u64::MAX, |e| e.0.into()));
                Some(Root::flat(
                    entries.into_iter().flatten(),
                    self.drop_runs_user_code,
                ))
            }
        }
    }
}

/// Whether dropping a `T` may run code of the user's: its `Drop`, or that of a field. The
/// standard library's string types only free memory or decrement a count: no.
///
/// What remains is the global allocator, which may be the user's. It already ran outside any
/// frame when a map was freed (`Arc::into_inner` frees the root's own allocation before the
/// values are dropped in their frame), so dropping a map whose values all answer `false`
/// without a frame lets no more of the user's code run outside one.
pub(crate) fn drop_runs_user_code<T: 'static>() -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    std::mem::needs_drop::<T>()
        && t != TypeId::of::<String>()
        && t != TypeId::of::<Box<str>>()
        && t != TypeId::of::<Arc<str>>()
}

impl Root {
    /// Whether dropping a value reachable from this root may run code of the user's (see the
    /// field's docs): what decides whether the owner drops it in a frame of its own.
    #[inline]
    pub(crate) fn drop_runs_user_code(&self) -> bool {
        self.drop_runs_user_code
    }
}

/// How many stamps a thread takes from the shared counter at a time.
const STAMP_BLOCK: u64 = 1 << 20;

/// A stamp never handed out before: from a per-thread block, so that making a root costs no
/// shared atomic operation but one in a million. Never 0 (the read cache's "empty").
fn next_stamp() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BLOCKS: AtomicU64 = AtomicU64::new(STAMP_BLOCK);
    thread_local! {
        // (next, end) of this thread's block; no destructor, so usable at any time.
        static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    BLOCK.with(|block| {
        let (mut next, mut end) = block.get();
        if next == end {
            next = BLOCKS.fetch_add(STAMP_BLOCK, Ordering::Relaxed);
            // 2^44 blocks: a process would need millennia of allocations to get there.
            assert!(
                next <= u64::MAX - STAMP_BLOCK,
                "contextvars: stamps exhausted"
            );
            end = next + STAMP_BLOCK;
        }
        block.set((next + 1, end));
        next
    })
}

#[inline]
fn bit_of(id: u64, shift: u32) -> u32 {
    1 << ((id >> shift) & MASK)
}

#[inline]
fn index_of(bitmap: u32, bit: u32) -> usize {
    (bitmap & (bit - 1)).count_ones() as usize
}

impl Node {
    #[inline]
    fn get(&self, id: u64) -> Option<&Value> {
        let mut node = self;
        let mut shift = 0;
        loop {
            let bit = bit_of(id, shift);
            if node.bitmap & bit == 0 {
                return None;
            }
            match &node.slots[index_of(node.bitmap, bit)] {
                Slot::Leaf(existing, value) => return (*existing == id).then_some(value),
                Slot::Branch(child) => {
                    node = child;
                    shift += BITS;
                }
            }
        }
    }

    /// A node holding `entries` (distinct ids, at least two, agreeing on every bit below
    /// `shift`); reorders them.
    fn build(entries: &mut [(u64, Value)], shift: u32) -> Node {
        entries.sort_unstable_by_key(|&(id, _)| (id >> shift) & MASK);
        let mut bitmap = 0;
        let mut slots = Vec::new();
        for group in entries.chunk_by_mut(|a, b| (a.0 >> shift) & MASK == (b.0 >> shift) & MASK) {
            bitmap |= bit_of(group[0].0, shift);
            slots.push(match group {
                [(id, value)] => Slot::Leaf(*id, value.clone()),
                group => Slot::Branch(Node::build(group, shift + BITS)),
            });
        }
        Node {
            bitmap,
            slots: slots.into(),
        }
    }

    /// A node holding one leaf: the root of a map whose one id does not fit a flat root.
    fn leaf(id: u64, value: Value) -> Node {
        Node {
            bitmap: bit_of(id, 0),
            slots: Arc::new([Slot::Leaf(id, value)]),
        }
    }

    /// A node holding two leaves whose ids agree on every bit below `shift`.
    fn pair(a: (u64, Value), b: (u64, Value), shift: u32) -> Node {
        let (bit_a, bit_b) = (bit_of(a.0, shift), bit_of(b.0, shift));
        if bit_a == bit_b {
            let child = Node::pair(a, b, shift + BITS);
            return Node {
                bitmap: bit_a,
                slots: Arc::new([Slot::Branch(child)]),
            };
        }
        let (first, second) = if bit_a < bit_b { (a, b) } else { (b, a) };
        Node {
            bitmap: bit_a | bit_b,
            slots: Arc::new([Slot::Leaf(first.0, first.1), Slot::Leaf(second.0, second.1)]),
        }
    }

    /// A copy of this node with the slot at `index` replaced: clones one `Arc` per sibling.
    fn replaced(&self, bitmap: u32, index: usize, slot: Slot) -> Node {
        let mut slot = Some(slot);
        let slots = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| match i == index {
                true => slot.take().unwrap_or_else(|| s.clone()),
                false => s.clone(),
            })
            .collect();
        Node { bitmap, slots }
    }

    /// Returns the new node and whether the id was new.
    fn insert(&self, id: u64, value: Value, shift: u32) -> (Node, bool) {
        let bit = bit_of(id, shift);
        let index = index_of(self.bitmap, bit);
        if self.bitmap & bit == 0 {
            let slots = self.slots[..index]
                .iter()
                .cloned()
                .chain(std::iter::once(Slot::Leaf(id, value)))
                .chain(self.slots[index..].iter().cloned())
                .collect();
            return (
                Node {
                    bitmap: self.bitmap | bit,
                    slots,
                },
                true,
            );
        }
        let (slot, added) = match &self.slots[index] {
            Slot::Leaf(existing, _) if *existing == id => (Slot::Leaf(id, value), false),
            Slot::Leaf(existing, old) => (
                Slot::Branch(Node::pair(
                    (*existing, old.clone()),
                    (id, value),
                    shift + BITS,
                )),
                true,
            ),
            Slot::Branch(child) => {
                let (child, added) = child.insert(id, value, shift + BITS);
                (Slot::Branch(child), added)
            }
        };
        (self.replaced(self.bitmap, index, slot), added)
    }

    /// `None` when the id is absent; `Some(None)` when the node becomes empty.
    fn remove(&self, id: u64, shift: u32) -> Option<Option<Node>> {
        let bit = bit_of(id, shift);
        if self.bitmap & bit == 0 {
            return None;
        }
        let index = index_of(self.bitmap, bit);
        let replacement = match &self.slots[index] {
            Slot::Leaf(existing, _) if *existing == id => None,
            Slot::Leaf(..) => return None,
            Slot::Branch(child) => match child.remove(id, shift + BITS)? {
                None => None,
                // A branch left with one leaf collapses into that leaf, keeping the trie minimal.
                Some(child) => match &*child.slots {
                    [Slot::Leaf(k, v)] => Some(Slot::Leaf(*k, v.clone())),
                    _ => Some(Slot::Branch(child)),
                },
            },
        };
        Some(match replacement {
            Some(slot) => Some(self.replaced(self.bitmap, index, slot)),
            None if self.slots.len() == 1 => None,
            None => {
                let slots = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != index)
                    .map(|(_, s)| s.clone())
                    .collect();
                Some(Node {
                    bitmap: self.bitmap & !bit,
                    slots,
                })
            }
        })
    }

    /// The leaves under this node, depth first.
    fn iter(&self) -> Iter<'_> {
        let mut iter = Iter::empty(usize::MAX);
        iter.stack[0] = self.slots.iter();
        iter.depth = 1;
        iter
    }
}

impl Map {
    pub(crate) const EMPTY: Map = Map { root: None };

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.root.as_ref().map_or(0, |root| root.len())
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&Value> {
        self.root.as_ref()?.get(id)
    }

    /// The root (`None` for the empty map): what `crate::raw`'s read cache is keyed by.
    #[inline]
    pub(crate) fn root(&self) -> Option<&Root> {
        self.root.as_deref()
    }

    /// The root's handle (`None` for the empty map), for `crate::raw`'s credits.
    #[inline]
    pub(crate) fn counted_root(&self) -> Option<&Counted<Root>> {
        self.root.as_ref()
    }

    /// Takes the root's handle out, leaving the empty map: how the owner of the map applies a
    /// drop policy of its own to the root (a `Context`'s, in `crate::state::release`).
    #[inline]
    pub(crate) fn take_root(&mut self) -> Option<Counted<Root>> {
        self.root.take()
    }

    /// A map of this root.
    #[inline]
    pub(crate) fn from_root(root: Counted<Root>) -> Map {
        Map { root: Some(root) }
    }

    pub(crate) fn insert(&self, id: u64, value: Value) -> Map {
        let drop_runs_user_code = value.drop_runs_user_code();
        let root = match (&self.root, u32::try_from(id)) {
            (None, Ok(small)) => Root::flat(std::iter::once((small, value)), drop_runs_user_code),
            (None, Err(_)) => Some(Root::trie(1, drop_runs_user_code, Node::leaf(id, value))),
            (Some(root), _) => Some(root.inserted(id, value, drop_runs_user_code)),
        };
        Map { root }
    }

    /// `None` when the id is not in the map (so the caller can keep sharing `self`).
    pub(crate) fn remove(&self, id: u64) -> Option<Map> {
        let root = self.root.as_ref()?.removed(id)?;
        Some(Map { root })
    }

    pub(crate) fn ptr_eq(&self, other: &Map) -> bool {
        match (&self.root, &other.root) {
            (None, None) => true,
            (Some(a), Some(b)) => Counted::ptr_eq(a, b),
            _ => false,
        }
    }

    pub(crate) fn iter(&self) -> Iter<'_> {
        let mut iter = Iter::empty(self.len());
        match self.root.as_deref().map(|root| (&root.body, root.len())) {
            None => {}
            Some((Body::Flat(flat), len)) => {
                iter.flat = flat.ids[..len].iter().zip(&flat.values[..len]);
            }
            Some((Body::Trie(node), _)) => {
                iter.stack[0] = node.slots.iter();
                iter.depth = 1;
            }
        }
        iter
    }
}

/// Depth-first walk with a fixed stack: iterating never allocates.
pub(crate) struct Iter<'a> {
    /// The entries of a flat root.
    flat: std::iter::Zip<std::slice::Iter<'a, u32>, std::slice::Iter<'a, Option<Value>>>,
    stack: [std::slice::Iter<'a, Slot>; MAX_DEPTH + 1],
    depth: usize,
    remaining: usize,
}

impl Iter<'_> {
    fn empty(remaining: usize) -> Self {
        Iter {
            flat: [].iter().zip(&[]),
            stack: Default::default(),
            depth: 0,
            remaining,
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (u64, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        for (&id, value) in self.flat.by_ref() {
            if let Some(value) = value {
                self.remaining -= 1;
                return Some((id.into(), value));
            }
        }
        while self.depth > 0 {
            match self.stack[self.depth - 1].next() {
                Some(Slot::Leaf(id, value)) => {
                    self.remaining -= 1;
                    return Some((*id, value));
                }
                Some(Slot::Branch(child)) => {
                    self.stack[self.depth] = child.slots.iter();
                    self.depth += 1;
                }
                None => self.depth -= 1,
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u64) -> Value {
        Arc::new(Stored {
            name: "n",
            debug: None,
            display: None,
            value: n,
        })
    }

    fn read(map: &Map, id: u64) -> Option<u64> {
        map.get(id)
            .map(|v| *v.value().downcast_ref::<u64>().expect("u64"))
    }

    /// Whether the map has the form its ids call for: flat when they are at most `FLAT` and
    /// each fits in a `u32`, a trie otherwise (both when the map is empty).
    fn has_its_form(map: &Map) -> bool {
        let Some(root) = map.root.as_deref() else {
            return true;
        };
        let small = map.len() <= FLAT && map.iter().all(|(id, _)| u32::try_from(id).is_ok());
        small == matches!(root.body, Body::Flat(_))
    }

    #[test]
    fn insert_get_remove_agree_with_a_btreemap() {
        use std::collections::BTreeMap;
        // Ids chosen to collide on low bits, spread over high bits, and include the extremes.
        let mut ids: Vec<u64> = (0..300).collect();
        ids.extend((0..40).map(|i| i << 5));
        ids.extend((0..40).map(|i| (i << 60) | 7));
        ids.extend([u64::MAX, u64::MAX - 1, 1 << 63]);
        let mut model = BTreeMap::new();
        let mut map = Map::EMPTY;
        for (step, &id) in ids.iter().enumerate() {
            let before = map.clone();
            map = map.insert(id, value(step as u64));
            model.insert(id, step as u64);
            assert_eq!(map.len(), model.len());
            assert!(has_its_form(&map));
            // The older snapshot is untouched.
            assert_eq!(
                before.len(),
                model.len() - usize::from(before.get(id).is_none())
            );
        }
        for (&id, &v) in &model {
            assert_eq!(read(&map, id), Some(v), "id {id}");
        }
        assert_eq!(read(&map, 12345), None);
        let mut seen: Vec<u64> = map.iter().map(|(id, _)| id).collect();
        seen.sort_unstable();
        assert_eq!(seen, model.keys().copied().collect::<Vec<_>>());
        for &id in ids.iter().step_by(3) {
            if model.remove(&id).is_some() {
                map = map.remove(id).expect("present");
            } else {
                assert!(map.remove(id).is_none());
            }
            assert_eq!(map.len(), model.len());
            assert!(has_its_form(&map));
            assert_eq!(read(&map, id), None);
        }
        for (&id, &v) in &model {
            assert_eq!(read(&map, id), Some(v), "id {id}");
        }
        assert_eq!(map.iter().count(), model.len());
        for &id in model.keys() {
            map = map.remove(id).expect("present");
            assert!(has_its_form(&map));
        }
        assert_eq!(map.len(), 0);
        assert!(map.root.is_none());
    }

    mod model {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Insert(u64, u64),
            Remove(u64),
            /// Keep the current map alive as a snapshot, checked again at the end.
            Snapshot,
        }

        /// Ids that collide: on their low bits (the first levels of the trie), on all but their
        /// top bits, or not at all; from a pool of up to 2,000 distinct ids; and ids on either
        /// side of `u32::MAX`, the last a flat root holds.
        fn id() -> impl Strategy<Value = u64> {
            prop_oneof![
                0..2_000u64,
                (0..64u64).prop_map(|i| i << 5),
                (0..64u64).prop_map(|i| (i << 58) | 0x15),
                (0..32u64).prop_map(|i| u64::MAX - i),
                (0..8u64).prop_map(|i| u64::from(u32::MAX) - 3 + i),
                any::<u64>(),
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => (id(), any::<u64>()).prop_map(|(id, v)| Op::Insert(id, v)),
                3 => id().prop_map(Op::Remove),
                1 => Just(Op::Snapshot),
            ]
        }

        fn agree(map: &Map, model: &BTreeMap<u64, u64>) {
            assert_eq!(map.len(), model.len());
            for (&id, &v) in model {
                assert_eq!(read(map, id), Some(v), "id {id}");
            }
            let mut seen: Vec<(u64, u64)> = map
                .iter()
                .map(|(id, v)| (id, *v.value().downcast_ref::<u64>().unwrap()))
                .collect();
            seen.sort_unstable();
            assert_eq!(
                seen,
                model.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>()
            );
            assert_eq!(map.root.is_none(), model.is_empty());
            assert!(has_its_form(map), "{:?}", model.keys());
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

            #[test]
            fn the_map_agrees_with_a_btreemap(ops in prop::collection::vec(op(), 1..400)) {
                let mut map = Map::EMPTY;
                let mut model = BTreeMap::new();
                let mut snapshots = Vec::new();
                for op in ops {
                    match op {
                        Op::Insert(id, v) => {
                            map = map.insert(id, value(v));
                            model.insert(id, v);
                        }
                        Op::Remove(id) => match map.remove(id) {
                            Some(smaller) => {
                                prop_assert!(model.remove(&id).is_some());
                                map = smaller;
                            }
                            None => prop_assert!(!model.contains_key(&id)),
                        },
                        Op::Snapshot => snapshots.push((map.clone(), model.clone())),
                    }
                    prop_assert_eq!(read(&map, 0xdead_beef_0000), model.get(&0xdead_beef_0000).copied());
                    prop_assert!(has_its_form(&map));
                }
                agree(&map, &model);
                for (snapshot, expected) in &snapshots {
                    agree(snapshot, expected);
                }
            }

            #[test]
            fn up_to_2000_variables_insert_and_remove(count in 1..2_000u64, step in 1..7u64) {
                let mut map = Map::EMPTY;
                let mut model = BTreeMap::new();
                for i in 0..count {
                    map = map.insert(i * step, value(i));
                    model.insert(i * step, i);
                }
                let full = map.clone();
                agree(&map, &model);
                for i in (0..count).step_by(2) {
                    map = map.remove(i * step).expect("present");
                    model.remove(&(i * step));
                    prop_assert!(has_its_form(&map));
                }
                agree(&map, &model);
                prop_assert_eq!(full.len() as u64, count);
            }
        }
    }

    #[test]
    fn the_drop_flag_is_set_by_a_value_whose_drop_runs_user_code_and_never_cleared() {
        struct Noisy;
        impl Drop for Noisy {
            fn drop(&mut self) {}
        }
        fn stored<T: Send + Sync + 'static>(value: T) -> Value {
            Arc::new(Stored {
                name: "v",
                debug: None,
                display: None,
                value,
            })
        }
        fn flag(map: &Map) -> bool {
            map.root
                .as_ref()
                .is_some_and(|root| root.drop_runs_user_code)
        }
        assert!(!drop_runs_user_code::<u64>());
        assert!(!drop_runs_user_code::<String>());
        assert!(!drop_runs_user_code::<Arc<str>>());
        assert!(drop_runs_user_code::<Noisy>());
        assert!(drop_runs_user_code::<Vec<u8>>());
        for count in [2, FLAT as u64 + 5] {
            let mut plain = Map::EMPTY.insert(1000, stored("text".to_string()));
            for id in 0..count {
                plain = plain.insert(id, value(id));
            }
            assert!(!flag(&plain), "{count}: strings and integers only");
            let noisy = plain.insert(500, stored(Noisy));
            assert!(flag(&noisy));
            let more = noisy.insert(501, value(1));
            assert!(flag(&more), "{count}: inherited");
            let removed = more.remove(500).expect("present");
            assert!(flag(&removed), "{count}: conservative after a removal");
            let shrunk = (0..count).fold(removed, |map, id| map.remove(id).expect("present"));
            assert!(flag(&shrunk), "{count}: kept when the trie becomes flat");
        }
    }

    #[test]
    fn the_same_ids_iterate_in_the_same_order_however_inserted() {
        for (count, big) in [3, FLAT as u64, FLAT as u64 + 1, 40]
            .into_iter()
            .flat_map(|count| [(count, false), (count, true)])
        {
            let mut ids: Vec<u64> = (0..count).map(|i| i * 97 + 3).collect();
            if big {
                // An id past `u32::MAX`: a trie at any length.
                ids[1] = u64::from(u32::MAX) + 97;
            }
            let forward = ids
                .iter()
                .fold(Map::EMPTY, |map, &id| map.insert(id, value(id)));
            let backward = ids
                .iter()
                .rev()
                .fold(Map::EMPTY, |map, &id| map.insert(id, value(id)));
            // Grown past the flat form and shrunk back.
            let mut shrunk = forward.clone();
            for id in 1000..1000 + FLAT as u64 + 1 {
                shrunk = shrunk.insert(id, value(id));
                assert!(has_its_form(&shrunk));
            }
            for id in 1000..1000 + FLAT as u64 + 1 {
                shrunk = shrunk.remove(id).expect("present");
                assert!(has_its_form(&shrunk));
            }
            let order = |map: &Map| map.iter().map(|(id, _)| id).collect::<Vec<_>>();
            assert_eq!(order(&forward), order(&backward), "{count} {big}");
            assert_eq!(order(&forward), order(&shrunk), "{count} {big}");
            assert_eq!(forward.len(), count as usize);
        }
    }

    #[test]
    fn an_id_past_u32_max_makes_a_small_map_a_trie_until_it_is_removed() {
        let big = u64::from(u32::MAX) + 1;
        let alone = Map::EMPTY.insert(big, value(1));
        assert!(matches!(alone.root.as_deref().unwrap().body, Body::Trie(_)));
        assert_eq!((alone.len(), read(&alone, big)), (1, Some(1)));
        assert!(alone.remove(big).expect("present").root.is_none());

        let mut map = Map::EMPTY.insert(u64::from(u32::MAX), value(0));
        for id in 1..4 {
            map = map.insert(id, value(id));
        }
        assert!(matches!(map.root.as_deref().unwrap().body, Body::Flat(_)));
        let with_big = map.insert(big, value(9));
        assert!(matches!(
            with_big.root.as_deref().unwrap().body,
            Body::Trie(_)
        ));
        assert_eq!(with_big.len(), 5);
        let replaced = with_big.insert(2, value(20)).insert(big, value(90));
        assert!(matches!(
            replaced.root.as_deref().unwrap().body,
            Body::Trie(_)
        ));
        assert_eq!(
            (read(&replaced, 2), read(&replaced, big)),
            (Some(20), Some(90))
        );
        let without = replaced.remove(big).expect("present");
        assert!(matches!(
            without.root.as_deref().unwrap().body,
            Body::Flat(_)
        ));
        let ids: Vec<u64> = without.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1, 2, 3, u64::from(u32::MAX)]);
        assert_eq!(read(&without, 2), Some(20));
        assert_eq!(
            (read(&map, 2), read(&map, big)),
            (Some(2), None),
            "untouched"
        );
    }

    #[test]
    fn replacing_keeps_the_length() {
        let map = Map::EMPTY.insert(3, value(1)).insert(3, value(2));
        assert_eq!(map.len(), 1);
        assert_eq!(read(&map, 3), Some(2));
    }
}
