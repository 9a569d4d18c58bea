"""The wire contract the relay owns: JSON-RPC types, Go-compatible JSON, bus messages, subjects."""
