"""Fleet mode: agents publish ticks to Redis; hubs serve every host with the same protocol."""
