"""Fast per-key look-ups that the personalise API serves from (model outputs, popular items)."""
