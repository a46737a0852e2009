"""How far the simulator is from measured systems: one module per source of measurements."""
