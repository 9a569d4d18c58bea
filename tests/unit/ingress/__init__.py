"""Tests of `ingress`."""
