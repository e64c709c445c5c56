"""A tf.estimator BERT library in the lineage of google-research/bert."""
