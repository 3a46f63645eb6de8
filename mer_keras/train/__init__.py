"""Training under tf.distribute with honest protocols, and the MER metrics."""
