"""What every actor shares: the NATS connection and service, the embedded server, settings."""
