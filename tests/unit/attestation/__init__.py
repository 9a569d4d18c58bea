"""Tests of `attestation`."""
