"""What a method leaks: distance correlation (leakage), reconstruction attacks on the activations (attack) and on
FedAvg's updates (gradient_inversion, update_attack), the label attacks on U-shaped split learning
(label_leakage), and FedAvg's update defence that those attacks must see through (defences)."""
