# R Shiny fixture: slider `n`, text output `result` showing n*3.
# R Shiny has no base-path setting: it only works when the proxy strips the prefix.
library(shiny)

ui <- fluidPage(
  h2("R Shiny fixture"),
  sliderInput("n", "n", min = 0, max = 100, value = 20),
  textOutput("result")
)

server <- function(input, output, session) {
  output$result <- renderText(paste0("n*3 = ", input$n * 3))
}

shinyApp(ui, server)
