"""Fault-injection suite: the daemon (a real subprocess) under broker, link, process,
disk, device and clock faults, on a real mosquitto and real sockets."""
