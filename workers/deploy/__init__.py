"""Deployment artefacts generated from a topology: nats-server configs (`relay nats-config`)."""
