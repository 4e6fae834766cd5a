"""Person re-ID datasets (Market-1501, DukeMTMC-reID, MSMT17, synthetic)."""
