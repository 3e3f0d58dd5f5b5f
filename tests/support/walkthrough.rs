//! [`Walkthrough`]: the walkthrough set up on a [`Site`], ready to run.

use super::{
    Backend, FRONTEND, FRONTEND_BODY, GATEWAY_YAML, Gateway, INVENTORY, INVENTORY_BODY, Site,
    VIRTUAL_SERVICES_YAML,
};

/// The walkthrough set up on a [`Site`]: both hosts' certificates, the
/// secrets, the Gateway and VirtualServices as published, the two backends
/// and their ServiceEntries. Nothing is running yet.
pub struct Walkthrough {
    pub site: Site,
    pub frontend: Backend,
    pub inventory: Backend,
}

impl Default for Walkthrough {
    fn default() -> Self {
        Walkthrough::new()
    }
}

impl Walkthrough {
    pub fn new() -> Walkthrough {
        Walkthrough::with_secrets(&[FRONTEND, INVENTORY])
    }

    /// As [`Walkthrough::new`], creating only the listed hosts' secrets.
    pub fn with_secrets(hosts: &[&str]) -> Walkthrough {
        let site = Site::new();
        for host in [FRONTEND, INVENTORY] {
            site.pki_init(host);
        }
        for host in hosts {
            site.create_walkthrough_secret(host);
        }
        site.apply("foocorp/gateway.yaml", GATEWAY_YAML);
        site.apply("foocorp/virtualservices.yaml", VIRTUAL_SERVICES_YAML);
        let frontend = Backend::start(FRONTEND_BODY);
        let inventory = Backend::start(INVENTORY_BODY);
        site.apply_service_entries(frontend.port(), inventory.port());
        Walkthrough {
            site,
            frontend,
            inventory,
        }
    }

    /// `gatehouse run` serving Gateway port 443.
    pub fn start(&self) -> Gateway {
        self.site.start_gateway(&[443])
    }

    /// Requests that reached either backend.
    pub fn backend_hits(&self) -> usize {
        self.frontend.hits() + self.inventory.hits()
    }
}
