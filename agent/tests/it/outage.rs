//! A mock cluster whose brokers can be taken down and brought back safely: [`DownableCluster`].
//!
//! librdkafka's own `broker_down` closes the mock broker's listener and binds its ephemeral port
//! again at once; when anything else on the machine takes that port in between, the mock asserts
//! and aborts the whole test binary (seen in CI). Here each broker is reached through a small TCP
//! relay on a port from [`free_port`] (below the ephemeral range, unique in this process), which
//! the cluster advertises in its metadata. Taking a broker down closes the relay's listener and
//! cuts its connections, so clients see what they see when a real broker goes away (connections
//! refused); the mock broker itself never closes its listener.
//!
//! Invariant: every address a client learns (bootstrap and metadata) is a relay's, so no client
//! can reach a broker that is down.

use crate::common::free_port;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::ClientConfig;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A three-broker mock cluster behind relays; derefs to librdkafka's [`MockCluster`] for topics
/// and leaders.
pub struct DownableCluster {
    /// Borrows `holder`'s client; declared first so it is dropped first.
    kc: MockCluster<'static, DefaultProducerContext>,
    /// The client that owns the mock cluster (`test.mock.num.brokers`).
    _holder: Box<BaseProducer>,
    relays: Vec<Relay>,
}

impl DownableCluster {
    /// Three brokers, with `topic` created with `partitions` partitions.
    pub fn new(topic: &str, partitions: i32) -> DownableCluster {
        let holder: Box<BaseProducer> =
            Box::new(ClientConfig::new().set("test.mock.num.brokers", "3").create().expect("mock cluster client"));
        // SAFETY: the mock cluster lives as long as `holder`'s client, which is boxed (it does not
        // move) and dropped after `kc` (field order); `kc` never leaves this struct.
        let kc: MockCluster<'static, DefaultProducerContext> =
            unsafe { std::mem::transmute(holder.client().mock_cluster().expect("a mock cluster")) };
        let raw = unsafe { rdkafka::bindings::rd_kafka_handle_mock_cluster(holder.client().native_ptr()) };
        let mut relays = Vec::new();
        for (i, target) in kc.bootstrap_servers().split(',').enumerate() {
            let relay = Relay::start(target.to_owned());
            // SAFETY: `raw` is the live mock cluster; the call copies the host name.
            unsafe {
                rdkafka::bindings::rd_kafka_mock_broker_set_host_port(
                    raw,
                    i as i32 + 1,
                    c"127.0.0.1".as_ptr(),
                    relay.port as i32,
                )
            };
            relays.push(relay);
        }
        kc.create_topic(topic, partitions, 1).expect("create topic");
        DownableCluster { kc, _holder: holder, relays }
    }

    /// The relays' addresses: the only way in.
    pub fn bootstrap_servers(&self) -> String {
        self.relays.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect::<Vec<_>>().join(",")
    }

    /// Takes broker `id` (1 to 3) down: connections to it are refused and open ones are cut.
    pub fn broker_down(&self, id: i32) {
        self.relays[id as usize - 1].down();
    }

    /// Brings broker `id` (1 to 3) back.
    pub fn broker_up(&self, id: i32) {
        self.relays[id as usize - 1].up();
    }

    /// Takes all three brokers down, or brings them back.
    pub fn all_down(&self, up: bool) {
        for id in 1..=3 {
            if up {
                self.broker_up(id)
            } else {
                self.broker_down(id)
            }
        }
    }
}

impl std::ops::Deref for DownableCluster {
    type Target = MockCluster<'static, DefaultProducerContext>;

    fn deref(&self) -> &Self::Target {
        &self.kc
    }
}

/// One broker's relay: a listener on its own port that pipes each connection to the broker.
struct Relay {
    port: u16,
    /// `None` while the broker is down (the port is then closed: connections are refused).
    listener: Arc<Mutex<Option<TcpListener>>>,
    /// Both ends of every relayed connection, to cut when the broker goes down.
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(target: String) -> Relay {
        let port = free_port();
        let listener = Arc::new(Mutex::new(Some(bind(port))));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, c, s) = (listener.clone(), conns.clone(), stop.clone());
        let thread = std::thread::spawn(move || accept_loop(&l, &c, &s, &target));
        Relay { port, listener, conns, stop, thread: Some(thread) }
    }

    fn down(&self) {
        // Closed under the lock, so no connection is accepted after this returns.
        self.listener.lock().unwrap().take();
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        let mut l = self.listener.lock().unwrap();
        if l.is_none() {
            *l = Some(bind(self.port));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.down();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds the relay's port (again). The port is below the ephemeral range and handed out once per
/// process, so nothing else takes it while the broker is down.
fn bind(port: u16) -> TcpListener {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("relay port {port}: {e}"));
    // Polled, so the accept loop never holds the lock while waiting.
    l.set_nonblocking(true).unwrap();
    l
}

fn accept_loop(listener: &Mutex<Option<TcpListener>>, conns: &Mutex<Vec<TcpStream>>, stop: &AtomicBool, target: &str) {
    while !stop.load(Ordering::Relaxed) {
        // The lock is released at the end of this statement, before any sleep.
        let polled = listener.lock().unwrap().as_ref().map(|l| l.accept());
        let accepted = match polled {
            Some(Ok((client, _))) => client,
            // Nothing waiting, the broker is down, or a connection reset before it was accepted
            // (the client tries again, as it would with a real broker).
            _ => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        let Ok(broker) = TcpStream::connect(target) else { continue };
        let _ = accepted.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        let mut list = conns.lock().unwrap();
        // Went down between the accept and now: this connection is cut like the others.
        if listener.lock().unwrap().is_none() {
            continue;
        }
        list.push(accepted.try_clone().unwrap());
        list.push(broker.try_clone().unwrap());
        drop(list);
        pipe(accepted.try_clone().unwrap(), broker.try_clone().unwrap());
        pipe(broker, accepted);
    }
}

/// Copies `from` to `to` until either closes, then closes `to` for writing.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
