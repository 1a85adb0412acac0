"""Notifier: streams each reservation's state over server-streaming gRPC."""
