fn main() {
    eprintln!("ipvsadm: not built yet");
    std::process::exit(2)
}
