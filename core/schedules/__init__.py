"""Who works when and where: providers, their weekly hours per location, and time off."""
