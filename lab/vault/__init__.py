"""The Vault stand-in: its HTTPS server, PKI engine, policies and Kubernetes auth, and its client."""
