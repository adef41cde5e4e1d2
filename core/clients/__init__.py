"""Clients of a clinic and their health records: intake, clinical notes, products, reactions, photos, consents."""
