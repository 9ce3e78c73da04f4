"""The pure core: patient state, engine and RecommendationSet. No I/O here."""
