"""Model jobs over the lake: read orders, fit, score, land versioned outputs, publish."""
