"""Operating a managed NATS cluster: observe the servers (`observe`, I/O through the
system account), decide the one next safe step (`plan`, pure) and carry it out (`act`)."""
