"""Sales: checkout on the day, retail products and returns, packages, gift certificates, store credit."""
