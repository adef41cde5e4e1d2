"""What the platform's operator uses: health checks and clinic administration."""
