//! A Kafka-protocol broker on loopback: librdkafka's mock cluster.
//!
//! Facts that shape its use (measured, see the design notes): it does not serve the admin
//! CreateTopics call, so topics are created here through the mock API; each partition keeps
//! only its last ~5 MB / 100,000 messages; a member that leaves without a LeaveGroup is noticed
//! after its session timeout.

use anyhow::Context as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running local broker. Dropping it stops it.
pub struct LocalBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for LocalBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBroker")
            .field("bootstrap", &self.bootstrap_servers())
            .finish()
    }
}

impl LocalBroker {
    /// Starts a single-broker cluster with `topics` (name, partition count).
    pub fn start(topics: &[(&str, i32)]) -> anyhow::Result<LocalBroker> {
        let cluster = MockCluster::new(1).context("starting the mock cluster")?;
        let broker = LocalBroker { cluster };
        for (topic, partitions) in topics {
            broker.create_topic(topic, *partitions)?;
        }
        Ok(broker)
    }

    /// Creates a topic (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("creating topic {topic}"))
    }

    /// The `bootstrap.servers` to give clients.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// The underlying mock cluster, for fault injection.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
