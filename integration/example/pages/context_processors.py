from django.conf import settings


def flags_mode(request):
    """For the footer: {{ flags_mode }}, "flagproxy" or "waffle" (EXAMPLE_FLAGS),
    and {{ flags_header_missing }}, true when flagproxy mode got no usable header."""
    decisions = getattr(request, 'flagproxy', None)
    return {
        'flags_mode': settings.EXAMPLE_FLAGS,
        'flags_header_missing': settings.EXAMPLE_FLAGS == 'flagproxy' and (decisions is None or decisions.error is not None),
    }
