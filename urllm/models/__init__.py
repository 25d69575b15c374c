"""Sequential recommenders of stage 1: popularity, SASRec and the dual-graph model."""
