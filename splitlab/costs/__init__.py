"""What a method costs: bytes in closed form (traffic), what a role computes (work) and the deployment model
behind the decision map (decision). A run's time over a link, replayed from its trace, is link_estimate.py."""
