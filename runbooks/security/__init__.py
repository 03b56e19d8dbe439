"""Security incident response: finding attackers and banning them."""
