"""The sans-I/O core: plain objects fed data and asked for output. Nothing here
imports asyncio, sockets, threads or a web framework (tests/test_layout.py checks)."""
