//! The broker for a benchmark: a tansu process on a free loopback port (installed by
//! `scripts/install-tools.sh`), with one fresh topic per measured run.

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    bin: PathBuf,
    child: Child,
    pub bootstrap: String,
    watcher: BaseConsumer,
}

impl Broker {
    pub fn start(bin: PathBuf) -> anyhow::Result<Broker> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start tansu at {}", bin.display()))?;
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&bootstrap).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "tansu did not start listening on {bootstrap}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let watcher: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &bootstrap).set("group.id", "bench-watch").create()?;
        Ok(Broker { bin, child, bootstrap, watcher })
    }

    pub fn version(&self) -> String {
        Command::new(&self.bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        let status = Command::new(&self.bin)
            .args(["topic", "create", topic, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "tansu topic create {topic} failed");
        Ok(())
    }

    /// Freezes the broker (SIGSTOP): its connections stay open and nothing answers, the way a
    /// hung or partitioned broker looks to a client. [`Broker::thaw`] resumes it.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill {sig} tansu failed");
        Ok(())
    }

    /// Sum of the partitions' high watermarks: cheap progress polling during a run. tansu's
    /// watermarks can lag slightly, so completeness is always confirmed by fetching afterwards.
    pub fn watermark(&self, topic: &str, partitions: i32) -> u64 {
        (0..partitions)
            .filter_map(|p| self.watcher.fetch_watermarks(topic, p, Duration::from_secs(2)).ok())
            .map(|(_, high)| high.max(0) as u64)
            .sum()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
