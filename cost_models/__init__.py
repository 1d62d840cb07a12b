"""Pure, vectorized analytical cost models (latency, area, power, energy)."""
