"""Demo data: the Instacart sample turned into a realistic Segment-spec event stream."""
