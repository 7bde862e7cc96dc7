"""A middleware that reads a flag, for the system-check tests."""
from flagproxy_django.waffle import flag_is_active


class ReadsFlags:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.beta = flag_is_active(request, 'beta')
        return self.get_response(request)

