"""The web layer: JSON API (/api/v1, OpenAPI), pages for staff and citizens, gateway webhooks."""
