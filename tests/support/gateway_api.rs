//! The Gateway API project's examples as published (beside `apiserver.sh`,
//! see [`super::kube::k8s_dir`]), turned to gatehouse's GatewayClass, and
//! the one-listener Gateway the dir-store and API-server tests build on.

/// gatehouse's GatewayClass, named `gatehouse`.
pub const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: gatehouse
spec:
  controllerName: gatehouse.io/gateway-controller
";

/// An example file as published.
pub fn example(rel: &str) -> String {
    let path = super::kube::k8s_dir()
        .join("examples/gateway-api-v1.6.1")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An example with every `gatewayClassName` set to gatehouse's class, and
/// `parentRefs` to `gateway` added where it names none.
pub fn ours(yaml: &str, gateway: &str) -> String {
    let mut out = String::new();
    for doc in yaml.split("\n---") {
        let mut d: String = doc
            .lines()
            .map(|l| match l.split_once("gatewayClassName:") {
                Some((indent, _)) => format!("{indent}gatewayClassName: gatehouse"),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        if d.contains("kind: HTTPRoute") && !d.contains("parentRefs") {
            d = d.replacen(
                "\nspec:\n",
                &format!("\nspec:\n  parentRefs:\n  - name: {gateway}\n"),
                1,
            );
        }
        out.push_str(&d);
        out.push_str("\n---\n");
    }
    out
}

/// A Gateway API Gateway of gatehouse's class with one HTTP listener on 80.
pub fn http_gateway(name: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  gatewayClassName: gatehouse
  listeners:
  - name: http
    protocol: HTTP
    port: 80
"
    )
}
