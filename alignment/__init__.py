"""Frame registration for fixed-camera sequences (methods and the Ray Data pipeline): to come."""
