"""CDS Hooks 2.0 adapter: the service's HTTP door for CDS clients."""
