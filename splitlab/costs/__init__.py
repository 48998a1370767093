"""What a method costs: bytes in closed form (traffic), what a role computes (work), a run's time over a link
replayed from its trace (link_estimate) and the deployment model behind the decision map (decision)."""
