from django.conf import settings


def flags_mode(request):
    """{{ flags_mode }}: "flagproxy" or "waffle" (EXAMPLE_FLAGS), for the footer."""
    return {'flags_mode': settings.EXAMPLE_FLAGS}
