"""POST /login: Django's authenticate + login, 302 with the session cookie."""
from django.contrib.auth import authenticate, login
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def login_view(request):
    if request.method != "POST":
        return HttpResponse("POST username and password\n", status=405)
    user = authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return HttpResponse("wrong username or password\n", status=401)
    login(request, user)
    return HttpResponseRedirect("/")


urlpatterns = [path("login", login_view)]
