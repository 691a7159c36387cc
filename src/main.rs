fn main() {
    println!("vestibule");
}
