"""Generation: key/value cache and attention, weight packing, sampling, token generation."""
