// The login form: POST /api/login, then back to the console (its session cookie is set).
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const response = await fetch("/api/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({
      username: document.getElementById("login-user").value,
      password: document.getElementById("login-password").value,
    }),
  });
  if (response.ok) {
    window.location.assign("/");
  } else {
    error.textContent = (await response.json()).error;
  }
});
