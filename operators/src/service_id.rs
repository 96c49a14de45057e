//! A node's identity in the service graph.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A service, or a virtual node (an uninstrumented database, queue or peer known only
/// from its callers). The region is part of the identity when spans carry `cloud.region`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceId {
    /// Service name, or the virtual node's name.
    pub name: Arc<str>,
    /// `cloud.region`, when known.
    pub region: Option<Arc<str>>,
    /// Known only from client spans.
    pub virtual_node: bool,
}

impl ServiceId {
    /// An instrumented service.
    pub fn service(name: Arc<str>, region: Option<Arc<str>>) -> Self {
        Self { name, region, virtual_node: false }
    }

    /// A virtual node named from peer attributes (a shared name is not copied).
    pub fn virtual_node(name: impl Into<Arc<str>>) -> Self {
        Self { name: name.into(), region: None, virtual_node: true }
    }
}

impl fmt::Display for ServiceId {
    /// `name`, or `name@region`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.region {
            Some(r) => write!(f, "{}@{r}", self.name),
            None => f.write_str(&self.name),
        }
    }
}
