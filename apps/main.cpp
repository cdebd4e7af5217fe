#include <iostream>
int main() { std::cout << "crayon\n"; }
