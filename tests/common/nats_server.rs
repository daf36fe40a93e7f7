//! A real `nats-server` on 127.0.0.1 with a port of its own choosing, stopped when dropped.
//! Shared by `tests/nats.rs` and `examples/nats_orders.rs`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `nats-server`; killed and reaped on drop.
pub(crate) struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub(crate) url: String,
}

/// Where the server binary is: `$NATS_SERVER`, else `nats-server` on `PATH`, else the Debian
/// package's `/usr/sbin/nats-server` (not on every user's `PATH`).
fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir: PathBuf| dir.join("nats-server"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            "the `nats-server` binary was not found (on PATH, in /usr/sbin or /usr/local/bin, or \
             in $NATS_SERVER): install it, e.g. `apt-get install -y nats-server` on Debian, or run \
             `.ci/test`, which installs it when missing"
                .to_owned()
        })
}

impl NatsServer {
    /// Starts a server listening on 127.0.0.1 at a free port (`-p -1`: the server picks one and
    /// logs it) and waits until it says it listens.
    pub(crate) fn start() -> Result<NatsServer, String> {
        let binary = binary()?;
        let mut child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", "-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (found, port) = mpsc::channel();
        // Reads the log for the port, then keeps draining it so the server never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.split("Listening for client connections on ").nth(1) {
                    if let Some(found) = found.take() {
                        let _ = found.send(address.trim().to_owned());
                    }
                }
            }
        });
        let mut server = NatsServer {
            child,
            url: String::new(),
        };
        match port.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => {
                server.url = format!("nats://{address}");
                Ok(server)
            }
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                Err(format!(
                    "{} did not report a listening port within 30 s (exit status: {status:?})",
                    binary.display()
                ))
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
