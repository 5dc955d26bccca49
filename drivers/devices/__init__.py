"""Device drivers: one small class per protocol, speaking the tester's vocabulary."""
