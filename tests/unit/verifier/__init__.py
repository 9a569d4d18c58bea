"""Tests of `verifier`."""
