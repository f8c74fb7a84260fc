"""Helpers shared by the emitter families: geometry of windows, quantization arithmetic,
vector constants. No emitter is registered here, and nothing here imports a family, so
every family can depend on ``common`` without forming import cycles."""
