"""What a method leaks: distance correlation (leakage), reconstruction attacks on the activations (attack) and
the label attacks on U-shaped split learning (label_leakage)."""
