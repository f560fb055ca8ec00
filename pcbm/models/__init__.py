"""PCBM models: segmenter, property head, decision layer, the composite, interventions."""
