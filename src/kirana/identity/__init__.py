"""Identity resolution: one profile per customer from every identifier they show.

``rules`` (what counts as an identifier, limits, priorities, junk values) and
``graph`` (the canonical merge of a connected component) are pure; ``engine``
applies them incrementally against a :class:`kirana.identity.store.ProfileStore`.
"""
