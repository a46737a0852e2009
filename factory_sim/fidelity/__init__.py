"""How far the simulator is from measured systems: errors against published results."""
