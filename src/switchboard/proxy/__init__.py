"""The provider proxy: ``ANY /proxy/{connection}/{path}`` through the connection's client."""
